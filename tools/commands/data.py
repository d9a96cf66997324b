"""`soundlens data`: dataset utilities; `check-split` finds test clips inside a training list."""

from __future__ import annotations


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check = sub.add_parser("check-split", help="count training ids that are also test ids (leakage)",
                           description="Count training ids that are also test ids, after normalising every "
                                       "list form (id lines, id,int CSV, <id>.jpg, <id>.mp4,label, vggss.json, "
                                       "<ytid>_<start_ms>_<end_ms>).")
    check.add_argument("train_list", metavar="TRAIN_LIST", help="training id list")
    check.add_argument("--test", required=True, metavar="TEST_LIST", help="test id list (e.g. vggss.json)")
    check.add_argument("--write-clean", metavar="OUT", help="write TRAIN_LIST minus the test ids, same format")
    check.add_argument("--examples", type=int, default=10, help="overlapping ids to print (default 10)")
    check.add_argument("--strict", action="store_true", help="exit with status 1 when any id overlaps")
    parser.set_defaults(_data_parser=parser)


def run(args) -> int:
    if getattr(args, "data_command", None) != "check-split":
        args._data_parser.print_help()
        return 0
    from training import splits

    train = splits.read_id_list(args.train_list)
    report = splits.check_split(train, args.test)
    print(f"train: {report.train} ({report.n_train_records} records, {report.n_train_unique} unique ids)")
    print(f"test:  {report.test} ({report.n_test_unique} unique ids)")
    share = 100.0 * report.n_overlap / max(report.n_train_unique, 1)
    print(f"overlap: {report.n_overlap} training ids are test ids ({share:.2f}% of the training ids)")
    if report.overlap and args.examples > 0:
        print("  e.g. " + ", ".join(report.overlap[: args.examples]))
    if args.write_clean:
        removed = splits.write_clean(train, set(report.overlap), args.write_clean)
        print(f"wrote {args.write_clean}: {removed} records removed, format kept")
    return 1 if args.strict and report.n_overlap else 0
