// A program outside the ouro tree: includes all of ouro through the installed umbrella header.
#include <cstdio>

#include "ouro/ouro.hpp"

int main() {
    ouro::parameter_store<float> store;
    const ouro::parameter w = store.add("layer.weight", ouro::shape{3, 4});
    ouro::philox_stream rng(7, ouro::rng_purpose::user);
    for (float& x : store.value(w)) x = rng.normal();
    std::printf("consumer ok: %lld parameters\n", static_cast<long long>(store.parameter_count()));
    return store.parameter_count() == 12 ? 0 : 1;
}
