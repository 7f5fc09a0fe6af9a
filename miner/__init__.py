"""miner: a proof-of-work mining worker whose replicas race to extend one chain kept in Redis."""

__version__ = "0.1.0"
