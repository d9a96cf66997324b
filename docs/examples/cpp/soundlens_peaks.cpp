// Where is the sound now? A soundlens.v1 subscriber in C++ written from docs/protocol.md alone.
//
// It follows the fresh-data rule of §1.1: one SUB socket per latest topic, ZMQ_CONFLATE before
// connect, subscribe to the topic plus one space, one recv per read. Each read prints
//   * the published peaks (soundlens.latest.v1.peaks.<stream>) in pixels, and
//   * the peaks it recomputes from the latest heatmap with the rule of §4.2,
//   * the tracks (soundlens.latest.v1.tracks.<stream>) with their ids and directions,
// so tests/realtime/test_cpp_example.py can check all three against the Python side by seq.
//
// Build (Debian: g++ libzmq3-dev cppzmq-dev nlohmann-json3-dev):
//   g++ -std=c++17 -O2 soundlens_peaks.cpp -o soundlens_peaks -lzmq
// Run:
//   ./soundlens_peaks tcp://127.0.0.1:5555 [reads, 0 = forever] [pause ms between reads] [stream]

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

using nlohmann::json;

struct Peak {
    double u, v, x, y, score;
};

// §1.1 steps 1-5: a conflating SUB socket for one latest topic.
static zmq::socket_t latest_socket(zmq::context_t& ctx, const std::string& address, const std::string& prefix) {
    zmq::socket_t sock(ctx, zmq::socket_type::sub);
    sock.set(zmq::sockopt::conflate, 1);  // before connect: keep only the newest message
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::rcvtimeo, 5000);  // ms: notice a dead publisher
    sock.set(zmq::sockopt::subscribe, prefix);  // topic + one space: an exact match
    sock.connect(address);
    return sock;
}

// One read: the newest message on that socket, its header parsed; nullopt on timeout or a bad message.
static std::optional<json> read_latest(zmq::socket_t& sock, const std::string& prefix) {
    zmq::message_t frame;
    if (!sock.recv(frame)) return std::nullopt;  // RCVTIMEO passed
    std::string text = frame.to_string();
    if (text.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    json header = json::parse(text.begin() + prefix.size(), text.end(), nullptr, false);
    if (header.is_discarded() || !header.is_object()) return std::nullopt;
    if (!header.contains("version") || header["version"][0].get<int>() != 1) return std::nullopt;  // major 1 only
    return header;
}

static int64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock of mono_ns (same host)
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// §4.2 step 3: the vertex offset of the parabola through values[i-1..i+1], 0 on a border.
static double subcell(const std::vector<double>& values, size_t i) {
    if (i == 0 || i + 1 == values.size()) return 0.0;
    double left = values[i - 1], mid = values[i], right = values[i + 1];
    double d = left - 2.0 * mid + right;
    if (d >= 0.0) return 0.0;
    return std::min(0.5, std::max(-0.5, 0.5 * (left - right) / d));
}

// §4.2 steps 1-5 on a heatmap message's normalised map (heatmap.data, h rows of w numbers).
static std::vector<Peak> recompute_peaks(const json& header, size_t k) {
    const auto& data = header["heatmap"]["data"];
    const size_t h = data.size(), w = data[0].size();
    std::vector<std::vector<double>> m(h, std::vector<double>(w));
    for (size_t r = 0; r < h; ++r)
        for (size_t c = 0; c < w; ++c) m[r][c] = data[r][c].get<double>();
    struct Cell { size_t r, c; };
    std::vector<Cell> found;  // row-major order
    for (size_t r = 0; r < h; ++r) {
        for (size_t c = 0; c < w; ++c) {
            bool peak = true, above_one = false;
            for (int dr = -1; dr <= 1 && peak; ++dr) {
                for (int dc = -1; dc <= 1; ++dc) {
                    if (dr == 0 && dc == 0) continue;
                    long rr = long(r) + dr, cc = long(c) + dc;
                    if (rr < 0 || cc < 0 || rr >= long(h) || cc >= long(w)) continue;  // outside: ignored
                    double n = m[rr][cc];
                    bool before = dr < 0 || (dr == 0 && dc < 0);  // earlier in row-major order
                    if (before ? !(m[r][c] > n) : !(m[r][c] >= n)) { peak = false; break; }
                    above_one = above_one || m[r][c] > n;
                }
            }
            if (peak && above_one) found.push_back({r, c});
        }
    }
    std::stable_sort(found.begin(), found.end(), [&](const Cell& a, const Cell& b) { return m[a.r][a.c] > m[b.r][b.c]; });
    if (found.size() > k) found.resize(k);

    const auto& region = header["heatmap"]["region"];  // x0, y0, x1, y1 in frame pixels
    double x0 = region[0].get<double>(), y0 = region[1].get<double>();
    double x1 = region[2].get<double>(), y1 = region[3].get<double>();
    const json centres = header["heatmap"].value("centres", json());  // null from a 1.2 publisher
    double width = header["frame"]["width"].get<double>(), height = header["frame"]["height"].get<double>();
    std::vector<Peak> peaks;
    for (const Cell& cell : found) {
        std::vector<double> row(m[cell.r]), column(h);
        for (size_t r = 0; r < h; ++r) column[r] = m[r][cell.c];
        double x, y;
        if (centres.is_object()) {  // 1.3: the cell's own centre, origin + (index + offset) * step (§4.2 step 4)
            x = centres["origin"][0].get<double>() + (double(cell.c) + subcell(row, cell.c)) * centres["step"][0].get<double>();
            y = centres["origin"][1].get<double>() + (double(cell.r) + subcell(column, cell.r)) * centres["step"][1].get<double>();
        } else {  // a 1.2 publisher: the middle of the cell's block of the region
            double fx = (double(cell.c) + 0.5 + subcell(row, cell.c)) / double(w);
            double fy = (double(cell.r) + 0.5 + subcell(column, cell.r)) / double(h);
            x = x0 + fx * (x1 - x0);
            y = y0 + fy * (y1 - y0);
        }
        peaks.push_back({x / width, y / height, x, y, m[cell.r][cell.c]});
    }
    return peaks;
}

static void print_peak(const char* what, const json& header, size_t i, const Peak& p) {
    // %.17g: every double printed exactly, so the test can compare bit for bit
    std::printf("%s seq=%lld inference=%lld i=%zu x=%.17g y=%.17g u=%.17g v=%.17g score=%.17g\n", what,
                header["seq"].get<long long>(), header["inference"].get<long long>(), i, p.x, p.y, p.u, p.v, p.score);
}

int main(int argc, char** argv) {
    const std::string address = argc > 1 ? argv[1] : "tcp://127.0.0.1:5555";
    const long reads = argc > 2 ? std::stol(argv[2]) : 0;
    const long pause_ms = argc > 3 ? std::stol(argv[3]) : 0;
    const std::string stream = argc > 4 ? argv[4] : "cam0";
    const std::string peaks_prefix = "soundlens.latest.v1.peaks." + stream + " ";
    const std::string heatmap_prefix = "soundlens.latest.v1.heatmap." + stream + " ";
    const std::string tracks_prefix = "soundlens.latest.v1.tracks." + stream + " ";

    zmq::context_t ctx;
    zmq::socket_t peaks_sock = latest_socket(ctx, address, peaks_prefix);
    zmq::socket_t heatmap_sock = latest_socket(ctx, address, heatmap_prefix);
    zmq::socket_t tracks_sock = latest_socket(ctx, address, tracks_prefix);
    for (long n = 0; reads == 0 || n < reads; ++n) {
        auto peaks = read_latest(peaks_sock, peaks_prefix);
        auto heatmap = read_latest(heatmap_sock, heatmap_prefix);
        auto tracks = read_latest(tracks_sock, tracks_prefix);
        if (!peaks || !heatmap || !tracks) {
            std::fprintf(stderr, "nothing from %s for 5 s: is `soundlens live` running?\n", address.c_str());
            return 1;
        }
        // exact 64-bit stamps from the string forms (§4.1); the age is valid on the publisher's host
        int64_t capture = std::stoll((*peaks)["mono_ns_str"]["capture"].get<std::string>());
        std::printf("read %ld peaks seq=%lld age_ms=%.1f stamp_ns=%s frame=%lldx%lld\n", n,
                    (*peaks)["seq"].get<long long>(), (monotonic_ns() - capture) / 1e6,
                    (*peaks)["stamp_ns_str"].get<std::string>().c_str(), (*peaks)["frame"]["width"].get<long long>(),
                    (*peaks)["frame"]["height"].get<long long>());
        size_t i = 0;
        for (const auto& p : (*peaks)["peaks"])
            print_peak("peak", *peaks, i++, {p["u"].get<double>(), p["v"].get<double>(), p["x"].get<double>(),
                                             p["y"].get<double>(), p["score"].get<double>()});
        auto again = recompute_peaks(*heatmap, (*heatmap)["peaks"].size());
        for (i = 0; i < again.size(); ++i) print_peak("recomputed", *heatmap, i, again[i]);
        for (const auto& t : (*tracks)["tracks"]) {  // azimuth/elevation are null without a camera model
            std::printf("track seq=%lld id=%lld x=%.17g y=%.17g score=%.17g azimuth=%s\n",
                        (*tracks)["seq"].get<long long>(), t["id"].get<long long>(), t["x"].get<double>(),
                        t["y"].get<double>(), t["score"].get<double>(), t["azimuth"].dump().c_str());
        }
        std::fflush(stdout);
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    }
    return 0;
}
