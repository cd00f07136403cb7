"""Reading documents and queries from files."""

from colmax.io.readers import read_documents, read_queries, read_texts

__all__ = ["read_documents", "read_queries", "read_texts"]
