"""A mutual-TLS front for a Docker engine's unix socket: what a remote engine started with
``--tlsverify`` looks like to a client. Run as its own process by the TLS tests:

    python -m tests.tls_proxy PORT UNIX_SOCKET SERVER_CERT SERVER_KEY CLIENT_CA

Prints ``ready`` once listening on 127.0.0.1:PORT; clients without a certificate signed by
CLIENT_CA are refused during the handshake.
"""
from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(context: ssl.SSLContext, conn: socket.socket, unix_path: str) -> None:
    try:
        client = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError):
        conn.close()
        return
    upstream = socket.socket(socket.AF_UNIX)
    upstream.connect(unix_path)
    threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
    _pipe(client, upstream)


def main(port: int, unix_path: str, cert: str, key: str, client_ca: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    server = socket.create_server(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve, args=(context, conn, unix_path), daemon=True).start()


def make_pki(folder: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1, a client certificate, and a client
    certificate from a different CA (which the engine must refuse); PEM file paths."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=berth-test-{ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("rogue", "rogue-ca", "client.ext")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", ext,
                "-out", f"{name}.pem")
    return {p.stem + p.suffix.replace(".", "_"): str(p) for p in folder.iterdir()}


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:6])
