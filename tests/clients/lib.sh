# lib.sh - placeholder
