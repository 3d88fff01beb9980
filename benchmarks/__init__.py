"""Benchmarks of unpod-async against plain aiohttp, httpx + pydantic and a naive loop.

``python -m benchmarks`` runs the default suite (see ``--help``); ``benchmarks.bench_paging`` is
the core client's acceptance benchmark and ``benchmarks.profile_hot_path`` profiles it.
"""
