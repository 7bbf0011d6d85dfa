"""
Protocol test vectors (JSON) and the script that writes them; see docs/protocol.rst, "Test vectors".
"""
