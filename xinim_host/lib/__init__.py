"""What every XINIM process shares, and nothing else: the wire format
(``protocol/``), lattice IPC (``ipc``), node links (``transport``), the server
base with its call vector (``server``), errors, XINIM syscall numbers
(``syscalls``) and the Linux ABI structs and constants (``linux_abi``,
``vm_abi``).  The bottom layer: it imports no other xinim_host package."""
