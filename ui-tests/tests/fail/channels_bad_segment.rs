ziggy::channels! { request { Sql } }

fn main() {}
