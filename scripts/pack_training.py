"""Pack a training config for a lent GPU machine: the photos, masks and coarse masks its datasets read,
its starting weights and a resolved config, in one new folder (:mod:`sam_sr.training.pack`).

``SAM_SR_DATA=/path/to/data python scripts/pack_training.py --config configs/experiments/crm_r18_gpu.yaml
--out .device/pack [key=value ...] [--max-mib 48]``

Then, there: ``python -m sam_sr train --config .device/pack/train.yaml`` (``scripts/device_train.sh``
does it in one call; docs/TRAINING.md gives the whole procedure). Keep the pack out of git
(``.device/`` is ignored): it holds copies of the data folder's files.
"""
import argparse
import sys

from sam_sr import SamSrError
from sam_sr.config import load_config
from sam_sr.training.pack import pack_training


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training config, e.g. configs/experiments/crm_r18_gpu.yaml")
    ap.add_argument("--out", default=".device/pack", help="new folder for the pack (default .device/pack)")
    ap.add_argument("--max-mib", type=float, default=48.0, help="refuse a pack over this many MiB (default 48)")
    ap.add_argument("--name", default="", help="the run's out_dir becomes runs/NAME (default: the config's)")
    ap.add_argument("overrides", nargs="*", help="dotted key=value overrides of the config")
    args = ap.parse_args()
    try:
        m = pack_training(load_config(args.config, args.overrides), args.out, args.max_mib, args.name)
    except SamSrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for d in m["datasets"]:
        print(f"{d['root']}: {d['samples']} samples, {d['bytes'] / 2 ** 20:.1f} MiB")
    print(f"wrote {args.out}: {m['bytes'] / 2 ** 20:.1f} MiB; train there with "
          f"python -m sam_sr train --config {args.out}/train.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
