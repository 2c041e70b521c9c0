"""Writes a Node.js single executable application blob into a copy of the Node.js binary, as postject does.

Usage: inject.py <node binary> <blob> <output>
ELF: the blob becomes a note named NODE_SEA_BLOB in a segment of its own. Node.js finds it in memory through the
PT_NOTE program headers, so the note needs a PT_LOAD that maps it and a PT_NOTE over the same bytes (LIEF's own
note writer drops notes of unknown type, hence the two segments built here).
Mach-O: a section __NODE_SEA_BLOB in a segment __NODE_SEA; the caller removes the signature first and signs after.
Then the fuse sentinel is flipped to ":1" so that Node.js runs the embedded script instead of its usual command line.
"""
import struct
import sys

import lief

RESOURCE = "NODE_SEA_BLOB"
FUSE = b"NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"


def fuse_at(data: bytes) -> int:
    """The offset of the fuse's state byte; exits unless the fuse is there exactly once and not flipped yet."""
    at = data.find(FUSE + b":")
    if at < 0 or data.find(FUSE + b":", at + 1) >= 0:
        sys.exit("inject.py: the binary must hold the SEA fuse exactly once")
    state = at + len(FUSE) + 1
    if data[state:state + 1] != b"0":
        sys.exit("inject.py: the SEA fuse is already flipped: this binary already holds a blob")
    return state


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def elf_note(blob: bytes) -> bytes:
    """One ELF note (namesz, descsz, type 0, name, description), each part padded to 4 bytes."""
    name = RESOURCE.encode() + b"\0"
    return struct.pack("<III", len(name), len(blob), 0) + padded(name) + padded(blob)


def inject_elf(binary: lief.ELF.Binary, blob: bytes) -> None:
    note = elf_note(blob)
    load = lief.ELF.Segment()
    load.type = lief.ELF.Segment.TYPE.LOAD
    load.flags = lief.ELF.Segment.FLAGS.R
    load.alignment = 0x10000  # 64 KiB: also loads where the kernel uses 16 or 64 KiB pages (arm64)
    load.content = list(note)
    load = binary.add(load)
    header = lief.ELF.Segment()
    header.type = lief.ELF.Segment.TYPE.NOTE
    header.flags = lief.ELF.Segment.FLAGS.R
    header.alignment = 4
    header = binary.add(header)
    header.file_offset = load.file_offset
    header.virtual_address = load.virtual_address
    header.physical_address = load.virtual_address
    header.physical_size = len(note)
    header.virtual_size = len(note)


def inject_macho(binary: lief.MachO.Binary, blob: bytes) -> None:
    if binary.get_segment("__NODE_SEA") is not None:
        sys.exit("inject.py: the binary already holds a __NODE_SEA segment")
    segment = lief.MachO.SegmentCommand("__NODE_SEA")
    segment.init_protection = segment.max_protection = 1  # VM_PROT_READ: Node.js reads the blob where it is mapped
    section = lief.MachO.Section.create("__NODE_SEA_BLOB", list(blob))
    if section is None:
        sys.exit("inject.py: LIEF could not make the Mach-O section")
    segment.add_section(section)
    binary.add(segment)


def inject(binary_path: str, blob: bytes, output: str) -> None:
    with open(binary_path, "rb") as f:
        fuse_at(f.read())  # refuse a binary that already holds a blob before any work
    parsed = lief.parse(binary_path)
    if isinstance(parsed, lief.MachO.FatBinary):
        parsed = parsed.at(0) if parsed.size == 1 else None
    if isinstance(parsed, lief.ELF.Binary):
        inject_elf(parsed, blob)
    elif isinstance(parsed, lief.MachO.Binary):
        inject_macho(parsed, blob)
    else:
        sys.exit(f"inject.py: {binary_path} is neither an ELF nor a single-architecture Mach-O executable")
    parsed.write(output)
    with open(output, "rb") as f:
        data = bytearray(f.read())
    data[fuse_at(data)] = ord("1")
    with open(output, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    with open(sys.argv[2], "rb") as blob_file:
        inject(sys.argv[1], blob_file.read(), sys.argv[3])
