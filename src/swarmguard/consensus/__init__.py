"""The consensus core (sans-IO): PBFT vocabulary over the brief's concurrent 2-round/3-round
protocol. Guide: docs/consensus.md. Work in progress (issue 5): the vote tally is built.
"""
