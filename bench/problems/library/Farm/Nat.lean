import Mathlib

/-!
# Natural numbers: the premises the shipped problem set leans on

A small library indexed by `leanfarm index` in the retriever's tests.
-/

namespace Farm.Nat

/-- Addition of natural numbers is commutative. -/
theorem add_comm (n m : ℕ) : n + m = m + n := by
  omega

/-- Addition of natural numbers is associative. -/
theorem add_assoc (n m k : ℕ) : n + m + k = n + (m + k) := by
  omega

/-- Multiplication of natural numbers is commutative. -/
theorem mul_comm (n m : ℕ) : n * m = m * n := by
  ring

/-- Multiplication distributes over addition on the left. -/
theorem mul_add (a b c : ℕ) : a * (b + c) = a * b + a * c := by
  ring

/-- The successor of `n` is at most `m` exactly when `n` is less than `m`. -/
theorem succ_le_iff {n m : ℕ} : n.succ ≤ m ↔ n < m :=
  Nat.succ_le_iff

/-- A number divides itself. -/
theorem dvd_refl (n : ℕ) : n ∣ n :=
  ⟨1, by ring⟩

/-- Divisibility is transitive. -/
theorem dvd_trans {a b c : ℕ} (h₁ : a ∣ b) (h₂ : b ∣ c) : a ∣ c :=
  Nat.dvd_trans h₁ h₂

/-- The remainder of a sum modulo `n` is the remainder of the sum of remainders. -/
theorem add_mod (a b n : ℕ) : (a + b) % n = (a % n + b % n) % n :=
  Nat.add_mod a b n

/-- The remainder of a product modulo `n`. -/
theorem mul_mod (a b n : ℕ) : a * b % n = a % n * (b % n) % n :=
  Nat.mul_mod a b n

/-- The greatest common divisor divides both arguments. -/
theorem gcd_dvd_left (m n : ℕ) : Nat.gcd m n ∣ m :=
  Nat.gcd_dvd_left m n

/-- Even numbers are those whose remainder modulo two is zero. -/
theorem even_iff_two_dvd (n : ℕ) : Even n ↔ 2 ∣ n :=
  even_iff_two_dvd

/-- A prime number is at least two. -/
theorem Prime.two_le {p : ℕ} (hp : p.Prime) : 2 ≤ p :=
  hp.two_le

/-- The sum of the first `n` natural numbers, doubled. -/
theorem gauss_sum (n : ℕ) : 2 * (Finset.range (n + 1)).sum id = n * (n + 1) := by
  induction n with
  | zero => simp
  | succ n ih => rw [Finset.sum_range_succ, mul_add, ih]; simp; ring

/-- The factorial of a natural number is positive. -/
theorem factorial_pos (n : ℕ) : 0 < n.factorial :=
  Nat.factorial_pos n

end Farm.Nat
