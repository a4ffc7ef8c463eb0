"""The HTTP gateway: authenticates, checks roles, validates bodies, calls RPC, shapes JSON."""
