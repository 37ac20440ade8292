fn main() {
    spice_build::link_libtorch()
}
