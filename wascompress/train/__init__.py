"""Training: the WAS step and its sandwich, the trainer and its run folder, DOM fine-tuning."""
