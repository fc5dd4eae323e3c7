#!/usr/bin/env python3
"""Checks what `sam build` left: each function of template.yaml has its `bootstrap`, an
aarch64 ELF executable (the template's arm64) linked at a fixed address (build.rs), under
.aws-sam/build/. Run by scripts/test.sh after `sam build`, with the .venv's Python (cfn-lint's
loader reads the template)."""
import os
import sys

from cfnlint.decode import decode

ELF_MAGIC = b"\x7fELF"
ELF_64_BIT = 2
EM_AARCH64 = 183
ET_EXEC = 2  # not position-independent: the loader rewrites no pointers at start-up
ET_DYN = 3  # position-independent, when AC_WEBHOOK_SYNC_PIE asks for it (read as build.rs reads it)


def main():
    template, matches = decode("template.yaml")
    if matches:
        sys.exit(f"template.yaml does not parse: {matches}")
    functions = sorted(n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function")
    failures, sizes = [], []
    want = ET_EXEC if os.environ.get("AC_WEBHOOK_SYNC_PIE", "") in ("", "0") else ET_DYN
    for name in functions:
        path = os.path.join(".aws-sam", "build", name, "bootstrap")
        try:
            with open(path, "rb") as f:
                header = f.read(20)
        except OSError as e:
            failures.append(f"{path}: {e.strerror}")
            continue
        machine = int.from_bytes(header[18:20], "little")
        if header[:4] != ELF_MAGIC or header[4] != ELF_64_BIT or machine != EM_AARCH64:
            failures.append(f"{path} is not a 64-bit aarch64 ELF (machine {machine})")
        elif (e_type := int.from_bytes(header[16:18], "little")) != want:
            failures.append(f"{path}: e_type {e_type}, not {want}"
                            + (": build.rs did not link it at a fixed address" if want == ET_EXEC else ""))
        elif not os.access(path, os.X_OK):
            failures.append(f"{path} is not executable")
        else:
            sizes.append(f"{name} {os.path.getsize(path) / 1e6:.1f} MB")
    if failures:
        sys.exit("\n".join(failures))
    print("aarch64 bootstraps: " + ", ".join(sizes))


if __name__ == "__main__":
    main()
