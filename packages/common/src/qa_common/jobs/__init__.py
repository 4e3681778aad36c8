"""The jobs every architecture shares: train (with evaluation, export, registration), evaluate, benchmark."""
