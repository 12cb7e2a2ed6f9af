axiom cheat : False
theorem everything : 1 = 2 := cheat.elim
