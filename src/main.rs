fn main() {
    println!("wacall: under construction");
}
