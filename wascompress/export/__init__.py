"""Export: freezing Plain or Shadow Weights into sparse or pruned ONNX graphs, and checking them."""
