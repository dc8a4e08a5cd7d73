#!/usr/bin/env python3
"""Trains the PyTorch reference seed-mnist on a Fashion-MNIST subset written by
bench/train.mjs --parity and prints the validation loss after each epoch as a
JSON list. Args: TORCH_CAE_PY DIR N_TRAIN N_VAL EPOCHS."""
import importlib.util
import json
import sys

import numpy as np
import torch

ref, d, n_train, n_val, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
spec = importlib.util.spec_from_file_location("torch_cae", ref)
cae = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cae)

def load(name, n):
    a = np.fromfile(f"{d}/{name}.u8", dtype=np.uint8).reshape(n, 28, 28, 1)
    return torch.from_numpy(a.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)

torch.manual_seed(7)
torch.set_num_threads(1)
x_train, x_val = load("train", n_train), load("val", n_val)
enc, dec, _ = cae.seed_model("seed-mnist", "nearest")
model = torch.nn.Sequential(enc, dec)
opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-7)
g = torch.Generator().manual_seed(7)
out = []
for _ in range(epochs):
    model.train()
    for idx in torch.randperm(n_train, generator=g).split(32):
        b = x_train[idx]
        opt.zero_grad(set_to_none=True)
        loss = ((model(b) - b) ** 2).mean()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out.append(float(((model(x_val) - x_val) ** 2).mean()))
print(json.dumps(out))
