"""Crypto benchmark: ECVRF prove/verify per call, and Ed25519 verify against bare PyNaCl.

Targets (issue 3): VRF prove <= 300 us and verify <= 500 us per call here; our Ed25519 verify
within 1.1x of a bare PyNaCl ``VerifyKey.verify``. Same method as the resilience benchmark
(``_harness``): interleaved rounds, P50/P99 over batch samples, ratios in one run.

Run: ``.venv/bin/python bench/crypto_bench.py [--quick] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any

import nacl.signing

from _harness import Case, Contestant, measure, render_case, summarise, sync_runner
from swarmguard.crypto import SigningKey, ecvrf


def cases() -> list[Case]:
    seed = os.urandom(32)
    key = ecvrf.VrfSecretKey(seed)
    alpha = b"chain-id|previous-seed|height"
    proof = key.prove(alpha)
    signer = SigningKey(seed)
    message = os.urandom(200)
    signature = signer.sign(message)
    bare = nacl.signing.VerifyKey(signer.public_key.raw)
    ours = signer.public_key
    return [
        Case(
            "ecvrf",
            "ECVRF-EDWARDS25519-SHA512-TAI (absolute targets: prove <= 300 us, verify <= 500 us)",
            None,
            [
                Contestant("swarmguard prove", "ours", sync_runner(lambda: key.prove(alpha))),
                Contestant(
                    "swarmguard verify",
                    "ours",
                    sync_runner(lambda: ecvrf.verify(key.public_key, proof, alpha)),
                ),
                Contestant(
                    "swarmguard proof_to_hash",
                    "ours",
                    sync_runner(lambda: ecvrf.proof_to_hash(proof)),
                ),
                Contestant(
                    "floor: libsodium Ed25519 verify",
                    "floor",
                    sync_runner(lambda: bare.verify(message, signature)),
                ),
            ],
        ),
        Case(
            "ed25519_verify",
            "Ed25519 verify of a 200-byte message",
            1.1,
            [
                Contestant(
                    "swarmguard PublicKey.verify",
                    "ours",
                    sync_runner(lambda: ours.verify(message, signature)),
                ),
                Contestant(
                    "PyNaCl VerifyKey.verify (bare)",
                    "peer",
                    sync_runner(lambda: bare.verify(message, signature)),
                ),
            ],
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    rounds, per_round, batch_ns = (5, 3, 2_000_000) if args.quick else (30, 5, 3_000_000)
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
        "cases": [],
    }
    for case in cases():
        measure(case, rounds, per_round, batch_ns)
        report["cases"].append(summarise(case))
        print(f"measured {case.key}", file=sys.stderr)
    vrf = {row["name"]: row for row in report["cases"][0]["rows"]}
    report["targets"] = {
        "prove_p50_us": round(vrf["swarmguard prove"]["p50_ns"] / 1000, 1),
        "verify_p50_us": round(vrf["swarmguard verify"]["p50_ns"] / 1000, 1),
        "prove_target_us": 300,
        "verify_target_us": 500,
        "pass": vrf["swarmguard prove"]["p50_ns"] <= 300_000
        and vrf["swarmguard verify"]["p50_ns"] <= 500_000,
    }
    lines = [f"Python {report['python']} on {report['machine']}; rounds={rounds}", ""]
    for case in report["cases"]:
        lines.extend(render_case(case))
    lines.append("## targets")
    lines.append(json.dumps(report["targets"], indent=2))
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
