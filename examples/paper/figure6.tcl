#
# Give different service to a particular destination
# (the paper's Figure 6, as printed; only the IP address is changed)
#

# Read the helper functions
source SprintLib.tcl

proc Connect { pid uid cmd fd address sqos gqos } {
    global AF
    # Parse the generic address argument
    set family [lindex $address 0]
    if { $family == $AF(INET) } {
        # Parse an IPv4 destination address
        set inaddr [lindex $address 1 ]
        if { $inaddr == "192.0.2.10" } {
            return "TOS 48"
        }
    }
}
