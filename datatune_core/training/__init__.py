"""Training: LoRA / QLoRA fine-tuning of a causal LM on the curated rows, as a resumable background job.

In: the project's curated rows (`transformation.mix`) or a rows file, a base model (`models`), the test set and
prompt format (`evaluation`) and the leakage guard (`leakage`). Out: an adapter folder with its training metadata
and rows, a "train" job (also multi-process through `accelerate launch -m datatune_core.training.launch JOB_ID`).
Modules: `config` (`LoraTrainConfig`, presets), `data` (rows -> leakage-checked, tokenized, packed data), `trainer`
(the LoRA model and the training loop), `launch` (`train_rows`, the job, the multi-process launch, the adapter folder).
"""
