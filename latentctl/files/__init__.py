"""Files on disk: checkpoints (safetensors), the workspace's folders and runs, atomic writes."""
