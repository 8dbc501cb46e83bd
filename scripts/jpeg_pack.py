"""An image `.npz` (x_train, y_train, x_test, y_test, uint8) packed as JPEG
bytes, and back: a CIFAR-10 copy small enough to travel to a machine that
cannot read `../shared/data/` (60,000 images in about 55 MB at quality 75).

    python scripts/jpeg_pack.py pack ../shared/data/cifar10.npz .gpudata/cifar10-q75.npz
    python scripts/jpeg_pack.py unpack .gpudata/cifar10-q75.npz /tmp/cifar10.npz

Lossy: the CIFAR-10 copy is itself decoded JPEG (quality about 75), and
encoding it again at 75 changes it little; `pack` prints the PSNR of the
round trip against its input (50.5 dB on the first 2,000 training images of
the copy).
"""

import argparse
import io
import sys

import numpy as np
from PIL import Image


def _encode(images, quality):
    chunks = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        chunks.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
    ends = np.cumsum([len(chunk) for chunk in chunks])
    return np.concatenate(chunks), ends


def _decode(data, ends):
    starts = np.concatenate([[0], ends[:-1]])
    return np.stack([np.asarray(Image.open(io.BytesIO(data[a:b].tobytes())).convert("RGB"))
                     for a, b in zip(starts, ends)])


def pack(source, target, quality=75):
    with np.load(source) as data:
        arrays = {key: data[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    out = {"y_train": arrays["y_train"], "y_test": arrays["y_test"], "quality": np.array(quality)}
    for split in ("train", "test"):
        out[f"jpeg_{split}"], out[f"ends_{split}"] = _encode(arrays[f"x_{split}"], quality)
    np.savez(target, **out)
    sample = arrays["x_train"][:2000]
    decoded = _decode(*_encode(sample, quality)).astype("float64")
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((decoded - sample) ** 2))
    print(f"{target}: {sum(out[k].nbytes for k in out) / 1e6:.1f} MB; PSNR against {source} "
          f"(first 2,000 training images): {psnr:.1f} dB")


def unpack(source, target):
    with np.load(source) as data:
        arrays = {"y_train": data["y_train"], "y_test": data["y_test"],
                  "x_train": _decode(data["jpeg_train"], data["ends_train"]),
                  "x_test": _decode(data["jpeg_test"], data["ends_test"])}
    np.savez(target, **arrays)
    print(f"{target}: x_train {arrays['x_train'].shape}, x_test {arrays['x_test'].shape}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--quality", type=int, default=75, help="pack: JPEG quality")
    args = parser.parse_args(argv)
    if args.action == "pack":
        pack(args.source, args.target, args.quality)
    else:
        unpack(args.source, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
