# qosd: hosts a policy script in a Safe Tcl interpreter (paper, section 4.2), in a child
# process of the daemon (run under prlimit). One request per line on stdin:
#     ID DEADLINE_MS UID BY Type pid uid cmd args...
# calls the proc named after the message type with the message tokens as its arguments, unless
# BY (the call's answer time, ms since the epoch; 0 for none) has passed when its turn comes,
# and answers one line on stdout, with the ID of the call it starts next ({} if none):
#     ID ok {result} NEXT  |  ID error {message} NEXT  |  ID timeout {message} NEXT
#     ID late {} NEXT   (not run: the rules have answered it)
# so that the daemon knows which call to blame if it hangs (having had none to run, it starts
# the first line it reads: the oldest the daemon has not had answered). Calls run one at a
# time, users (UID) in turn: each user with calls waiting gets one run, then waits behind
# every other such user.
# At start it answers "ready {procs}" or "fault {message} LINE".
#
# usage: tclsh tcl-host.tcl SCRIPT_DIR SCRIPT_FILE BUILTIN_SPRINTLIB

lassign $argv dir file sprintlib
fconfigure stdout -buffering line -translation lf
fconfigure stdin -translation lf

set s [interp create -safe]
# Safe Tcl has no `source`: give it one that reads files from the script's own directory by
# plain name only (SprintLib.tcl, the script itself), never a path, and never through a
# symbolic link (one beside the script could lead anywhere: /etc/shadow, and the error
# message would show its first line). Tcl 8.6 cannot open with O_NOFOLLOW: the entry is
# checked before and after the open, and must be the same plain file both times.
proc SafeSource {s name} {
    global dir sprintlib
    if {[file tail $name] ne $name || $name in {. ..}} {
        error "source: only files beside the policy script, by name: \"$name\""
    }
    set path [file join $dir $name]
    if {[catch {file lstat $path before}]} {
        if {$name ne "SprintLib.tcl"} { error "source: no file \"$name\" beside the policy script" }
        set path $sprintlib
        file lstat $path before
    }
    if {$before(type) ne "file"} {
        error "source: \"$name\" is a [expr {$before(type) eq "link" ? "symbolic link" : $before(type)}]; only plain files beside the policy script are sourced"
    }
    set f [open $path]
    file lstat $path after
    if {$after(type) ne "file" || $after(ino) != $before(ino) || $after(dev) != $before(dev)} {
        close $f
        error "source: \"$name\" was replaced while it was opened"
    }
    set text [read $f]
    close $f
    interp eval $s [list info script $name]
    return [interp eval $s $text]
}
interp alias $s source {} SafeSource $s

proc Limit {ms} {
    global s
    set t [expr {[clock milliseconds] + $ms}]
    interp limit $s time -seconds [expr {$t / 1000}] -milliseconds [expr {$t % 1000}]
}

Limit 1000
if {[catch {interp eval $s [list source $file]} msg opts]} {
    set line [expr {[dict exists $opts -errorline] ? [dict get $opts -errorline] : 0}]
    puts [list fault $msg $line]
    exit 1
}
set handlers {}
foreach p {Socket Connect Bind Listen Accept SendTo Close Shutdown Startup Cleanup} {
    if {[llength [interp eval $s [list info procs $p]]]} { lappend handlers $p }
}
puts [list ready $handlers]

# The calls waiting, by user: queue($uid) holds lines, of which those from head($uid) on
# have not run (a list is not copied per call taken, only trimmed now and then); turn holds
# the users with calls waiting in the order they get their next turn, but for the user whose
# call runs now: that one goes to the back once it ends, behind users who came meanwhile.
array set queue {}
array set head {}
set turn {}
set running ""
set lastRead 0

# Reads every complete line there is without waiting for more, and queues each.
proc Take {} {
    global queue head turn running lastRead
    set lastRead [clock milliseconds]
    while {[gets stdin line] >= 0} {
        set uid [lindex $line 2]
        if {![info exists queue($uid)]} {
            set head($uid) 0
            if {$uid ne $running} { lappend turn $uid }
        }
        lappend queue($uid) $line
    }
}

# The next call: the oldest of the user whose turn it is, or "" if there is none.
proc Next {} {
    global queue head turn running
    if {[llength $turn]} {
        if {$running ne "" && [info exists queue($running)]} { lappend turn $running }
        set turn [lassign $turn running]
    } elseif {$running eq "" || ![info exists queue($running)]} {
        set running ""
        return ""
    }
    # running: the user whose turn it is
    set line [lindex $queue($running) $head($running)]
    if {[incr head($running)] >= [llength $queue($running)]} {
        unset queue($running) head($running)
    } elseif {$head($running) >= 64 && 2 * $head($running) >= [llength $queue($running)]} {
        set queue($running) [lrange $queue($running) $head($running) end]
        set head($running) 0
    }
    return $line
}

# Serves calls until stdin ends (a proc: its variables are compiled to slots, faster than
# the globals of a loop at the top level).
proc Serve {} {
    global s queue head turn running lastRead
    set next ""
    while 1 {
        if {$next eq ""} {
            Take
            set next [Next]
            if {$next eq ""} {
                # Nothing to run: wait in a blocking read (the event loop would wake through
                # Tcl's notifier thread, two more context switches per wake).
                if {[eof stdin]} { exit 0 }
                fconfigure stdin -blocking 1
                set n [gets stdin line]
                fconfigure stdin -blocking 0
                if {$n >= 0} {
                    set uid [lindex $line 2]
                    set queue($uid) [list $line]
                    set head($uid) 0
                    lappend turn $uid
                }
                continue
            }
        }
        lassign $next id ms uid by
        set now [clock milliseconds]
        if {$by && $now > $by} {
            # the rules have answered it: not run (a backlog is dropped, not worked off)
            set status late
            set result ""
        } else {
            set t [expr {$now + $ms}]
            interp limit $s time -seconds [expr {$t / 1000}] -milliseconds [expr {$t % 1000}]
            if {[catch {interp eval $s [lrange $next 4 end]} result opts]} {
                set status [expr {[string match "time limit exceeded*" $result] ? "timeout" : "error"}]
                if {[dict exists $opts -errorline]} { append result " (line [dict get $opts -errorline])" }
            } else {
                set status ok
            }
        }
        # New lines: those Tcl has buffered, and the system's at most once a millisecond
        # between calls (a read that finds nothing is a system call per call); a user who
        # comes meanwhile waits for that, and for the call that runs then.
        if {[chan pending input stdin] > 0 || [clock milliseconds] != $lastRead} { Take }
        set next [Next]
        puts [list $id $status $result [lindex $next 0]]
    }
}

fconfigure stdin -blocking 0
Serve
