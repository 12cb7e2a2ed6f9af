fn main() {
    std::process::exit(lean_sim::main_with_args(std::env::args().skip(1).collect()));
}
