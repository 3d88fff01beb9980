"""Benchmarks of unpod-async against bare loops doing the same work minus what they omit.

``python -m benchmarks`` runs the suite (see ``--help``) and writes RESULTS.md and results.png;
``benchmarks.profile_hot_path`` profiles the CPU-bound pulls with py-spy; ``benchmarks/soak.py``
pulls a very large space through a faulty server.
"""
