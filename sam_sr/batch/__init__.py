"""Runs over many inputs: folders of photos and coarse masks or label maps (:mod:`.folders`), COCO
results files (:mod:`.coco`), shared out over the processes of a data-parallel launch
(:mod:`.parallel`). Each run checks every output first, reports each bad item and goes on."""
