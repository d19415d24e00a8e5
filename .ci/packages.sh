# Sourced by .ci/setup.sh and .ci/fuzz.sh: installs the Debian packages of
# its arguments that are missing (as root, or through sudo).
#   xm_install_packages TAG PACKAGE...    returns non-zero when apt-get fails
xm_install_packages() {
  local tag=$1 p missing=() sudo=""
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "$tag: installing ${missing[*]}"
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq || return 1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
