theorem two_le_three : 2 ≤ 3 := by sorry
