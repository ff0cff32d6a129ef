"""How LR images are made from HR ones: the bicubic protocol and the Sentinel-2 sensor model (training and evaluation)."""
