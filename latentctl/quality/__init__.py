"""How good a generator is: FID/KID/precision/recall (score), what `score` records (scoring), Inception-v3."""
