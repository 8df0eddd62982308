"""Training A, B and D, shared by warmup and adapt.

``loop`` runs the iterations (saving for --resume, logging, steering the discrepancy weight),
``steps`` is one iteration's losses and optimiser steps, ``data`` the batches it reads.

Data order is a function of (seed, iteration) alone and every other state is saved, so a
resumed run equals an uninterrupted one (bit for bit on the CPU).
"""
