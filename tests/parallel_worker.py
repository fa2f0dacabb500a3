"""A data-parallel job for tests/test_parallel.py: a folder run, a label-map run and a COCO run,
sharded with :func:`sam_sr.batch.parallel.run_sharded`. Run it with ``python`` (one process) or under
``accelerate launch --multi_gpu --num_processes 2`` (two CPU processes on a machine without GPUs).

``python tests/parallel_worker.py CKPT DATA OUT``: DATA holds images/, masks/, labels/, results.json,
annotations.json (see tests/test_parallel.py); OUT gets masks/, labels/, the three summaries and
coco.json.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from sam_sr import Refiner
from sam_sr.batch import folders as batch
from sam_sr.batch.coco import apply_refinement, merge_coco_summaries, plan_coco, run_coco_jobs
from sam_sr.batch.parallel import process_device, process_state, run_sharded
from sam_sr.data.coco import image_table, load_results, write_json


def main(ckpt: str, data: str, out: str) -> int:
    torch.set_num_threads(1)          # the same arithmetic in every run, whatever the process count
    data_dir, out_dir = Path(data), Path(out)
    state = process_state()
    refiner = Refiner.from_checkpoint(ckpt, device=process_device(state))

    jobs = batch.plan_mask_folder(data_dir / "images", data_dir / "masks", out_dir / "masks", soft=True)
    run_sharded(jobs, lambda js, d: batch.run_mask_jobs(refiner, js, desc=d, progress=False),
                out_dir / "masks_summary.json", state=state)

    jobs = batch.plan_label_folder(data_dir / "images", data_dir / "labels", out_dir / "labels")
    run_sharded(jobs, lambda js, d: batch.run_label_jobs(refiner, js, 3, 255, desc=d, progress=False),
                out_dir / "labels_summary.json", state=state)

    results = load_results(data_dir / "results.json")
    table = image_table(data_dir / "annotations.json", data_dir / "images")
    jobs = plan_coco(results, table)
    merged = run_sharded(jobs, lambda js, d: run_coco_jobs(refiner, results, js, desc=d, progress=False),
                         out_dir / "coco_summary.json", merge=merge_coco_summaries, state=state)
    if merged is not None:
        write_json(out_dir / "coco.json", apply_refinement(results, merged))
    print(f"process {state.process_index} of {state.num_processes} done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
