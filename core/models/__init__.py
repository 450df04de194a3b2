"""What the ASR and the aligner share: loading the official Qwen checkpoints into transformers' classes (`layout`),
log-mel features for many clips at once (`logmel`), and one engine per model that every job's items flow through (`engine`)."""
