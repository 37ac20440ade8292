fn main() {
    spice_build::rpath_to_libtorch()
}
