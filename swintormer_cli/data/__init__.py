"""Training data: synthetic defocus in torch, datasets of sharp photos, paired folders and DPDD."""
