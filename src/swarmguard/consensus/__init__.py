"""The consensus core (sans-IO): PBFT vocabulary over the brief's concurrent 2-round/3-round
protocol. Guide: docs/consensus.md. Work in progress (issue 5): built so far are the vote tally
(``tally``), rule 2's check (``justification``), the Propose format (``messages``), batching
(``batching``), the double-sign guard (``signing``), the future-height buffer (``buffer``),
the network-health monitor (``health``), and a first cut of the replica (``replica``); the
simulator comes next.
"""
