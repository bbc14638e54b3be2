# qosd: hosts a policy script in a Safe Tcl interpreter (paper, section 4.2), in a child
# process of the daemon (run under prlimit). One request per line on stdin:
#     ID DEADLINE_MS Type pid uid cmd args...
# calls the proc named after the message type with the message tokens as its arguments and
# answers one line on stdout:
#     ID ok {result}  |  ID error {message}  |  ID timeout {message}
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

while {[gets stdin line] >= 0} {
    if {[catch {lassign $line id ms} e] || ![string is integer -strict $id]} {
        puts [list 0 error "bad request"]
        continue
    }
    set call [lrange $line 2 end]
    Limit $ms
    if {[catch {interp eval $s $call} result opts]} {
        set status [expr {[string match "time limit exceeded*" $result] ? "timeout" : "error"}]
        if {[dict exists $opts -errorline]} { append result " (line [dict get $opts -errorline])" }
        puts [list $id $status $result]
    } else {
        puts [list $id ok $result]
    }
}
