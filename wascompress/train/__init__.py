"""Training: the WAS step, the trainer and its run folder, sub-network recipes, DOM fine-tuning."""
