"""An adapter: the operating system's service manager. `notify.py` speaks sd_notify(3)
(READY, STOPPING, STATUS, WATCHDOG), `journal.py` logs through journald's native
protocol, `systemd.py` finds, installs, enables and checks units with systemctl and
systemd-analyze."""
