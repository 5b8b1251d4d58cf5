#!/usr/bin/env bash
# Installs pgjdbc (Debian's libpostgresql-jdbc-java, /usr/share/java/postgresql.jar) and a JDK.
# The client is one Java source file run by the JDK's single-file launcher, so there is
# nothing to build.
set -euo pipefail

need=()
dpkg-query -W -f='${Status}' libpostgresql-jdbc-java 2>/dev/null | grep -q "install ok installed" \
    || need+=(libpostgresql-jdbc-java)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "pgjdbc install: need root to install ${need[*]}" >&2
        exit 1
    fi
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"
    }
    # A machine whose package lists were never fetched knows no package: fetch them once.
    apt_install "${need[@]}" || { apt-get -o DPkg::Lock::Timeout=600 update && apt_install "${need[@]}"; }
fi
test -r /usr/share/java/postgresql.jar
dpkg-query -W -f='pgjdbc ${Version}\n' libpostgresql-jdbc-java
