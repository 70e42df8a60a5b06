#!/usr/bin/env python3
"""Submission throughput: TOTAL messages over CONNECTIONS parallel connections to port 587
(STARTTLS and AUTH once per connection). Run on the app host; fails unless every message was
accepted. Usage: perf-mail-submit.py MAILHOST PASSWORD TOTAL CONNECTIONS
(the lab CA's root at /tmp/podium-acme-root.pem)."""

import smtplib
import ssl
import sys
import threading
import time

host, password, total, connections = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
context = ssl.create_default_context(cafile="/tmp/podium-acme-root.pem")
body = (b"From: noreply@podium.test\r\nTo: postmaster@podium.test\r\nSubject: perf\r\n\r\n"
        b"Confirm your address: https://podium.test/confirm/abcdef\r\n")
accepted = []


def worker(count: int) -> None:
    with smtplib.SMTP(host, 587, timeout=60) as smtp:
        smtp.starttls(context=context)
        smtp.login("app@podium.test", password)
        for _ in range(count):
            smtp.sendmail("bounce@podium.test", ["postmaster@podium.test"], body)
            accepted.append(1)


start = time.monotonic()
threads = [threading.Thread(target=worker, args=(total // connections,))
           for _ in range(connections)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
elapsed = time.monotonic() - start
if len(accepted) != total:
    sys.exit(f"only {len(accepted)} of {total} messages accepted")
print(f"{total} messages, {connections} connections, {elapsed:.2f} s, "
      f"{total / elapsed:.1f} msg/s")
