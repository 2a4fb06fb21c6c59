"""The systemd units, sysusers/tmpfiles files and the sd_notify protocol."""
