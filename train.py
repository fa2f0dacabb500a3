"""Train a sam-sr refiner: ``accelerate launch train.py --config configs/crm_r18.yaml [key=value ...]``."""
from sam_sr.cli import train_main

if __name__ == "__main__":
    raise SystemExit(train_main())
