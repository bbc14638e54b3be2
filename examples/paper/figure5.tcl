#
# Give NetMeeting better network service
# (the paper's Figure 5, as printed; only the NetMeeting command-line string is changed:
# here "NetMeeting" is a socat sending UDP to port 5004, run as `qos run -- socat ...`)
#

# Read the helper functions
source SprintLib.tcl

# String to recognize NetMeeting on this machine
set NetMeetingStr "socat -u - UDP4:192.0.2.10:5004"

# Intercept Socket calls and set packet mark
proc Socket { pid uid cmd family type protocol fd } {
    global NetMeetingStr AF SockType
    if {[string compare $cmd $NetMeetingStr] == 0} {
        if { $family == $AF(INET)
             && $type == $SockType(DGRAM) } {
            # High priority to NetMeeting video/audio
            return "TOS 48"
        } else {
            # Give some help to TCP (for signalling)
            return "TOS 16"
        }
    }
}
