"""Scoring documents for a query: reranking caller-given texts, exact search."""
