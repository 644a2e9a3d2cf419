"""Training a run: the request and its resolution (runs), the loop (training) and its steps
(trainers), what draws the run folder (listeners), worker processes and how a run is launched,
augmentation, health checks, events, recipes."""
