"""Evaluation: metrics (:mod:`.metrics`), a refiner over a dataset and several compared (:mod:`.evaluate`),
COCO mask scores (:mod:`.coco`), label-map scores (:mod:`.semantic`), the SAM-SR ablation and where a
dataset's ground truth sits (:mod:`.alignment`). Refiners are passed in: nothing here builds one."""
