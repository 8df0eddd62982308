"""What `labor extract` computes and how it writes it.

- ``scores``: per image, on the device: the inconsistency mask within SPL's budget, A's
  prediction and runner-up, PPL's candidates and the most uncertain pixels (docs/method.md);
  and A's and B's forward pass on a batch.
- ``writer``: rank 0's loop that writes every image's data, in order, into the masks artifact
  on a background thread.
"""
