"""The judge: a small digit classifier, in NumPy, that scores generated images the same way
whichever framework drew them (a Frechet distance on its features, an IS-style score, the
share of each class).

    python -m pytorch_impl.sample --weights runs/x/weights.npz --n 1000 --out x.npy
    python -m common.judge.evaluate x.npy                # score an (N, H, W, C) array
    python -m common.judge.train --dataset mnist         # retrain a committed judge (torch)

evaluate.py reads the committed judges beside it (<dataset>.npz); train.py made them.
"""
