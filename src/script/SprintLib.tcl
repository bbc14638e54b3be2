# qosd's SprintLib.tcl: the helper arrays the paper's policy scripts read (section 4.2.1),
# with Linux's numbers, as the agent sends them. A script's `source SprintLib.tcl` gets this
# file unless one of that name sits beside the script.

array set AF {
    UNSPEC 0
    UNIX 1
    INET 2
    INET6 10
}

array set SockType {
    STREAM 1
    DGRAM 2
    RAW 3
    SEQPACKET 5
}
